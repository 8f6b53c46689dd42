import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const MP = resolve(__dirname, '../../miniprogram');
const appJson = JSON.parse(readFileSync(join(MP, 'app.json'), 'utf8')) as { pages: string[] };

describe('app.json and page folders', () => {
  it('opens on the product list', () => {
    expect(appJson.pages[0]).toBe('pages/products/index');
  });

  it('registers every page folder, and nothing else', () => {
    const folders = readdirSync(join(MP, 'pages')).map((p) => `pages/${p}/index`);
    expect([...appJson.pages].sort()).toEqual(folders.sort());
  });

  it.each(appJson.pages)('%s has .ts, .json, .wxml, .wxss and is a Component() page', (page) => {
    for (const ext of ['ts', 'json', 'wxml', 'wxss'])
      expect(existsSync(join(MP, `${page}.${ext}`))).toBe(true);
    expect(JSON.parse(readFileSync(join(MP, `${page}.json`), 'utf8')).component).toBe(true);
    const source = readFileSync(join(MP, `${page}.ts`), 'utf8');
    expect(source).toMatch(/^Component\(\{/m);
    expect(source).not.toMatch(/^Page\(/m);
  });

  it('links only to registered pages', () => {
    const registered = new Set(appJson.pages.map((p) => `/${p}`));
    for (const page of appJson.pages) {
      const source = readFileSync(join(MP, `${page}.ts`), 'utf8');
      for (const [, url] of source.matchAll(/url: `(\/pages\/[^?`]+)/g)) expect(registered).toContain(url);
      for (const [, url] of source.matchAll(/url: '(\/pages\/[^?']+)'/g)) expect(registered).toContain(url);
    }
  });

  it('keeps wx.cloud.init in app.ts', () => {
    expect(readFileSync(join(MP, 'app.ts'), 'utf8')).toContain('wx.cloud.init(');
  });
});
