/**
 * What the styles promise on every phone: text readable at WCAG AA (4.5:1), no flex `gap`
 * (ignored below iOS 14.5, where buttons then touch), and bars at the bottom of the screen
 * clear of the iPhone home indicator.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const MP = resolve(__dirname, '../../miniprogram');
const PAGES = readdirSync(join(MP, 'pages'));
const WXSS = ['app.wxss', ...PAGES.map((p) => `pages/${p}/index.wxss`)];
const WXML = PAGES.map((p) => `pages/${p}/index.wxml`);
const read = (path: string) => readFileSync(join(MP, path), 'utf8');

/** The page background and the cards on it: text with no background of its own sits on either. */
const BACKGROUNDS = ['#ffffff', '#f5f5f5'];

function rules(css: string): { selector: string; decls: Record<string, string> }[] {
  const out: { selector: string; decls: Record<string, string> }[] = [];
  const text = css.replace(/\/\*[\s\S]*?\*\//g, '');
  for (const [, selector, body] of text.matchAll(/([^{}]+)\{([^{}]*)\}/g)) {
    const decls: Record<string, string> = {};
    for (const d of body!.split(';')) {
      const at = d.indexOf(':');
      if (at > 0) decls[d.slice(0, at).trim()] = d.slice(at + 1).trim();
    }
    out.push({ selector: selector!.trim(), decls });
  }
  return out;
}

function luminance(hex: string): number {
  let h = hex.replace('#', '');
  if (h.length === 3) h = [...h].map((c) => c + c).join('');
  const [r, g, b] = [0, 2, 4].map((i) => Number.parseInt(h.slice(i, i + 2), 16) / 255);
  const lin = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * lin(r!) + 0.7152 * lin(g!) + 0.0722 * lin(b!);
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe('styles', () => {
  it('computes contrast as WCAG does', () => {
    expect(contrast('#000', '#fff')).toBeCloseTo(21, 5);
    expect(contrast('#767676', '#fff')).toBeCloseTo(4.54, 2);
    expect(contrast('#888', '#fff')).toBeLessThan(4.5); // the old muted grey
  });

  it('keeps every text colour at WCAG AA contrast on the background it is drawn on', () => {
    const weak: string[] = [];
    for (const file of WXSS) {
      for (const { selector, decls } of rules(read(file))) {
        const color = decls['color'];
        if (!color) continue;
        expect(color, `${file} ${selector}: colours are hex, so they can be checked`).toMatch(
          /^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/,
        );
        const own = decls['background'] ?? decls['background-color'];
        const under = own && /^#[0-9a-fA-F]{3,6}$/.test(own) ? [own] : BACKGROUNDS;
        for (const bg of under) {
          const ratio = contrast(color, bg);
          if (ratio < 4.5) weak.push(`${file} ${selector}: ${color} on ${bg} is ${ratio.toFixed(2)}:1`);
        }
      }
    }
    expect(weak).toEqual([]);
  });

  it('uses no flex gap, which iOS below 14.5 ignores', () => {
    const gaps = WXSS.flatMap((file) =>
      rules(read(file))
        .filter((r) => 'gap' in r.decls || 'row-gap' in r.decls || 'column-gap' in r.decls)
        .map((r) => `${file} ${r.selector}`),
    );
    expect(gaps).toEqual([]);
  });

  it('pads bars fixed at the bottom for the home indicator, on every page that has one', () => {
    const safe = rules(read('app.wxss')).filter((r) => r.selector === '.safe-area');
    expect(safe.length).toBe(1);
    expect(read('app.wxss')).toMatch(/\.safe-area\s*\{[^}]*env\(safe-area-inset-bottom\)/);
    expect(read('app.wxss')).toMatch(/\.safe-area\s*\{[^}]*constant\(safe-area-inset-bottom\)/);
    const bars = WXML.flatMap((file) =>
      [...read(file).matchAll(/class="([^"]*\bbottom-bar\b[^"]*)"/g)].map((m) => ({ file, cls: m[1]! })),
    );
    expect(bars.map((b) => b.file).sort()).toEqual(
      ['checkout', 'order-detail', 'products', 'refund-apply'].map((p) => `pages/${p}/index.wxml`),
    );
    for (const b of bars) expect(b.cls.split(/\s+/), b.file).toContain('safe-area');
  });
});
