import type { NoticeTemplate } from './config';
import { type FactsByKind, type NoticeKind, variableValue } from './kinds';
import { EMPTY_VALUE, shapeValue } from './rules';

export type TemplateData = Record<string, { value: string }>;

/** The `data` of subscribeMessage.send for one notice: every field shaped to its rule. Never throws. */
export function renderData<K extends NoticeKind>(
  kind: K,
  template: NoticeTemplate,
  facts: FactsByKind[K],
  shopName: string,
): TemplateData {
  const data: TemplateData = {};
  for (const f of template.fields) {
    let value: string;
    try {
      const v = variableValue(kind, facts, f.variable, shopName);
      value = v ? shapeValue(f.type, v) : EMPTY_VALUE[f.type];
    } catch {
      // Facts of the wrong shape (a bug upstream) still give a valid notice, never a failed transition.
      value = EMPTY_VALUE[f.type];
    }
    data[f.keyword] = { value };
  }
  return data;
}
