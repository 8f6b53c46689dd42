/** What the browser tests share: Debian's Chromium, screenshots, and the "nothing cut off" check. */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { ROOT } from '../../sandbox/stack';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'browser');
/** Long enough for a notify round trip and a poll (1 s); short enough to fail fast. */
export const SHOWN_MS = 10_000;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });

/**
 * Every visible element that sticks out of the viewport sideways or clips its own content,
 * described so a failure says which one. Inputs and selects scroll their own text by design
 * and are only checked for their box. (Runs in the page: plain JS, the tests have no DOM types.)
 */
const CUT_OFF_IN_PAGE = `(() => {
  const vw = document.documentElement.clientWidth;
  const out = [];
  const name = (el) =>
    el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.getAttribute('data-testid') ? '[' + el.getAttribute('data-testid') + ']' : '') +
    ' "' + (el.textContent || '').trim().slice(0, 40) + '"';
  if (document.documentElement.scrollWidth > vw)
    out.push('the page is ' + document.documentElement.scrollWidth + 'px wide in a ' + vw + 'px viewport');
  for (const el of document.querySelectorAll('body *')) {
    if (el.getClientRects().length === 0) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > vw + 0.5 || r.left < -0.5)
      out.push(name(el) + ' spans ' + Math.round(r.left) + '..' + Math.round(r.right) + 'px');
    if (/^(INPUT|SELECT|TEXTAREA|OPTION)$/.test(el.tagName)) continue;
    const style = getComputedStyle(el);
    const clips = style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
    if (clips && el.scrollWidth > el.clientWidth + 1)
      out.push(name(el) + ' clips its content (' + el.scrollWidth + 'px in ' + el.clientWidth + 'px)');
  }
  return out;
})()`;

export function cutOff(page: Page): Promise<string[]> {
  return page.evaluate(CUT_OFF_IN_PAGE) as Promise<string[]>;
}

/** The page's own width, to compare with the viewport's. */
export function pageWidth(page: Page): Promise<number> {
  return page.evaluate('document.documentElement.scrollWidth') as Promise<number>;
}
