// Building DOM nodes without parsing markup: every value from the API becomes a text node.
const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, props, isSvg = false) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (!isSvg && key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("button", {class: "btn", onclick: fn}, "Label") */
export function h(tag, props, ...children) {
  return append(apply(document.createElement(tag), props), children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), props, true), children);
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
