// every(): refresh something on its own without piling up requests. The next run is planned
// only after the previous one has finished; nothing runs while the tab is hidden; it stops
// when the page's signal aborts (the operator went to another page).
export function every(ms, run, signal) {
  let timer = null;
  const schedule = () => {
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  async function tick() {
    timer = null;
    if (signal.aborted) return;
    if (document.hidden) {
      document.addEventListener("visibilitychange", tick, { once: true });
      return;
    }
    try {
      await run();
    } catch {
      // run() shows its own failures; an abort means the page is gone
    }
    schedule();
  }
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  schedule();
}
