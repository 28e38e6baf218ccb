// Light and dark: the operator's choice is kept in this browser, else the system's preference.
const KEY = "xr.theme";

export function currentTheme() {
  return (
    document.documentElement.dataset.theme ||
    localStorage.getItem(KEY) ||
    (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light")
  );
}

export function applyTheme(theme = currentTheme()) {
  document.documentElement.dataset.theme = theme;
}

export function toggleTheme() {
  const next = currentTheme() === "dark" ? "light" : "dark";
  localStorage.setItem(KEY, next);
  applyTheme(next);
  return next;
}
