/**
 * DevTools uploads the mini-program folder only. A value import of a file outside it (the
 * functions' contract, an npm package) compiles, in the official compiler, to a `require` of a
 * file that is not in the package, and the page dies on the phone; esbuild in these tests
 * would inline it and pass. So every import that leaves miniprogram/ must be `import type`,
 * which every TypeScript setting erases (an `import { type X }` can survive as a bare
 * `require` under verbatimModuleSyntax, so it does not count).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const MP = resolve(__dirname, '../../miniprogram');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const outside = (file: string, specifier: string) => {
  if (!specifier.startsWith('.')) return true; // an npm package: not in the upload either
  const target = resolve(dirname(file), specifier);
  return target !== MP && !target.startsWith(MP + sep);
};

/** `file:line specifier` for every import, export-from or require that takes values from outside. */
function valueImportsOutside(file: string, source: string): string[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.ES2020, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const report = (node: ts.Node, specifier: string) => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    found.push(`${relative(MP, file)}:${line} ${specifier}`);
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const spec = node.moduleSpecifier.text;
      if (outside(file, spec) && !node.importClause?.isTypeOnly) report(node, spec);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const spec = node.moduleSpecifier.text;
      if (outside(file, spec) && !node.isTypeOnly) report(node, spec);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expr = node.moduleReference.expression;
      if (ts.isStringLiteral(expr) && outside(file, expr.text) && !node.isTypeOnly) report(node, expr.text);
    } else if (ts.isCallExpression(node)) {
      const [arg] = node.arguments;
      const callee = node.expression;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      const isDynamic = callee.kind === ts.SyntaxKind.ImportKeyword;
      if ((isRequire || isDynamic) && arg && ts.isStringLiteralLike(arg) && outside(file, arg.text))
        report(node, arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

describe('imports that leave miniprogram/', () => {
  it('finds every way a value can come from outside, and lets type-only imports pass', () => {
    const file = join(MP, 'pages', 'x', 'index.ts');
    const contract = '../../../cloudfunctions/shared/contract';
    const found = (code: string) => valueImportsOutside(file, code);
    expect(found(`import { ERROR_CODES } from '${contract}';`)).toHaveLength(1);
    expect(found(`import { type ErrorCode } from '${contract}';`)).toHaveLength(1);
    expect(found(`import '${contract}';`)).toHaveLength(1);
    expect(found(`import * as c from '${contract}';`)).toHaveLength(1);
    expect(found(`export { ERROR_CODES } from '${contract}';`)).toHaveLength(1);
    expect(found(`const c = require('${contract}');`)).toHaveLength(1);
    expect(found(`const c = await import('${contract}');`)).toHaveLength(1);
    expect(found(`import dayjs from 'dayjs';`)).toHaveLength(1);
    expect(found(`import type { ErrorCode } from '${contract}';`)).toEqual([]);
    expect(found(`export type { ErrorCode } from '${contract}';`)).toEqual([]);
    expect(found(`import { api } from '../../services/api';`)).toEqual([]);
  });

  it('are all type-only in the mini-program’s own code', () => {
    const files = tsFiles(MP);
    expect(files.length).toBeGreaterThan(10);
    const found = files.flatMap((f) => valueImportsOutside(f, readFileSync(f, 'utf8')));
    expect(found).toEqual([]);
  });
});
