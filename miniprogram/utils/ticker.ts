/** A once-a-second timer per page instance (a page can be open twice in the stack). */
const timers = new WeakMap<object, ReturnType<typeof setInterval>>();

export function startTicker(owner: object, tick: () => void, everyMs = 1000): void {
  stopTicker(owner);
  timers.set(owner, setInterval(tick, everyMs));
}

export function stopTicker(owner: object): void {
  const t = timers.get(owner);
  if (t !== undefined) clearInterval(t);
  timers.delete(owner);
}
