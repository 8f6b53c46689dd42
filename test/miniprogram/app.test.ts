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

describe('project settings DevTools and the upload read', () => {
  const project = JSON.parse(readFileSync(resolve(MP, '../project.config.json'), 'utf8')) as {
    miniprogramRoot: string;
    setting: Record<string, unknown>;
    packOptions: { ignore: { type: string; value: string }[] };
  };

  it('loads only the components a page uses, and minifies what it uploads', () => {
    expect((appJson as { lazyCodeLoading?: string }).lazyCodeLoading).toBe('requiredComponents');
    expect(project.setting).toMatchObject({ minified: true, minifyWXML: true, minifyWXSS: true });
  });

  it('ignores files by paths inside the mini-program root, the only ones packOptions matches', () => {
    // packOptions paths are relative to miniprogramRoot: "test" or "node_modules" at the
    // repository's top never match anything there.
    for (const rule of project.packOptions.ignore) {
      const path = join(MP, rule.value);
      expect(existsSync(path), `${rule.type} ${rule.value}`).toBe(true);
    }
    expect(project.packOptions.ignore).toContainEqual({ type: 'file', value: 'tsconfig.json' });
  });

  it('keeps the merchant pages out of WeChat search (sitemap)', () => {
    const sitemap = JSON.parse(readFileSync(join(MP, 'sitemap.json'), 'utf8')) as {
      rules: { action: string; page: string }[];
    };
    const admin = appJson.pages.filter((p) => p.startsWith('pages/admin-'));
    expect(admin.length).toBeGreaterThan(0);
    // WeChat applies the first rule that matches a page.
    const ruleFor = (page: string) => sitemap.rules.find((r) => r.page === page || r.page === '*');
    for (const page of admin) expect(ruleFor(page)?.action, page).toBe('disallow');
    expect(ruleFor('pages/products/index')?.action).toBe('allow');
  });
});
