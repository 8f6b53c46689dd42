/**
 * Which template each notice uses and how its fields are filled, from function environment
 * variables, validated at cold start. A kind without a variable is off (the merchant has not
 * picked a template for it); a variable that is set but wrong is a configuration error, named
 * with what to fix.
 *
 * One variable per kind, the template id followed by `keyword=variable` pairs:
 *
 *   NOTICE_REFUND_APPLIED=<template id> character_string1=orderId amount2=amount thing3=reason time4=time
 *
 * The keywords are the template's own (`{{thing3.DATA}}` in the mini-program admin console's
 * template details); every keyword of the template must be filled, or WeChat answers 47003.
 */
import { KIND_VARIABLES, NOTICE_KINDS, type NoticeKind, VARIABLES, type Variable } from './kinds';
import { ACCEPTS, type KeywordType, keywordType } from './rules';

export interface NoticeTemplate {
  templateId: string;
  /** Template keyword (e.g. `thing3`) → the variable that fills it, in the order written. */
  fields: { keyword: string; type: KeywordType; variable: Variable }[];
}

export type MiniprogramState = 'developer' | 'trial' | 'formal';

export interface NoticeConfig {
  /** Only the kinds that are on. */
  templates: Partial<Record<NoticeKind, NoticeTemplate>>;
  /** Which version of the mini-program a tap on a notice opens. */
  miniprogramState: MiniprogramState;
}

export const NOTICE_ENV: Record<NoticeKind, string> = {
  order_paid: 'NOTICE_ORDER_PAID',
  refund_applied: 'NOTICE_REFUND_APPLIED',
  refund_attention: 'NOTICE_REFUND_ATTENTION',
  bill_mismatch: 'NOTICE_BILL_MISMATCH',
  refund_approved: 'NOTICE_REFUND_APPROVED',
  refund_rejected: 'NOTICE_REFUND_REJECTED',
  refund_completed: 'NOTICE_REFUND_COMPLETED',
  refund_closed: 'NOTICE_REFUND_CLOSED',
};

const FORMAT = '"<template id> <keyword>=<variable> …"';

/** Every notice variable, for the README, deploy and doctor (merged with CONFIG_VARIABLES). */
export const NOTICE_CONFIG_VARIABLES = {
  NOTICE_ORDER_PAID: `to every admin when an order is paid; ${FORMAT} (unset: off)`,
  NOTICE_REFUND_APPLIED: `to every admin when a shopper applies for a refund; ${FORMAT} (unset: off)`,
  NOTICE_REFUND_ATTENTION: `to every admin when a refund needs handling (failed, closed, abnormal, or refunded after it was ended); ${FORMAT} (unset: off)`,
  NOTICE_BILL_MISMATCH: `to every admin when the daily bill check finds differences; ${FORMAT} (unset: off)`,
  NOTICE_REFUND_APPROVED: `to the shopper when the merchant approves the refund; ${FORMAT} (unset: off)`,
  NOTICE_REFUND_REJECTED: `to the shopper when the merchant rejects the refund, with the comment; ${FORMAT} (unset: off)`,
  NOTICE_REFUND_COMPLETED: `to the shopper when the money is back; ${FORMAT} (unset: off)`,
  NOTICE_REFUND_CLOSED: `to the shopper when WeChat closed the refund; ${FORMAT} (unset: off)`,
  NOTICE_MINIPROGRAM_STATE:
    'which mini-program a notice opens: formal (default), trial or developer (for testing before release)',
} as const;

// Template ids in the admin console are 43 characters of base64url; allow some slack.
const TEMPLATE_ID = /^[A-Za-z0-9_-]{10,64}$/;

type Env = Record<string, string | undefined>;

function parseTemplate(
  kind: NoticeKind,
  name: string,
  raw: string,
  problems: string[],
): NoticeTemplate | undefined {
  const [templateId = '', ...pairs] = raw.trim().split(/\s+/);
  const before = problems.length;
  if (!TEMPLATE_ID.test(templateId)) {
    problems.push(`${name} must start with the template id (letters, digits, _ and -), then ${FORMAT}`);
    return undefined;
  }
  if (pairs.length === 0)
    problems.push(`${name} names no fields: write keyword=variable pairs after the template id`);
  const fields: NoticeTemplate['fields'] = [];
  const seen = new Set<string>();
  const allowed = KIND_VARIABLES[kind];
  for (const pair of pairs) {
    const m = /^([a-z_]+\d+)=([A-Za-z]+)$/.exec(pair);
    if (!m) {
      problems.push(`${name}: "${pair}" is not keyword=variable (e.g. thing3=product)`);
      continue;
    }
    const [, keyword = '', variable = ''] = m;
    const type = keywordType(keyword);
    if (!type) {
      problems.push(`${name}: ${keyword} is not a subscribe message keyword (thing1, amount2, time3, …)`);
      continue;
    }
    if (seen.has(keyword)) problems.push(`${name}: ${keyword} is given twice`);
    seen.add(keyword);
    if (!(allowed as readonly string[]).includes(variable)) {
      problems.push(
        `${name}: ${variable} is not available for this notice; use one of ${allowed.join(', ')}`,
      );
      continue;
    }
    const v = variable as Variable;
    if (!ACCEPTS[type].includes(VARIABLES[v].kind)) {
      const fits = allowed.filter((a) => ACCEPTS[type].includes(VARIABLES[a].kind));
      problems.push(
        `${name}: a ${type} field cannot show ${variable}${fits.length ? ` (it can show ${fits.join(', ')})` : `; pick a template without ${type} fields`}`,
      );
      continue;
    }
    fields.push({ keyword, type, variable: v });
  }
  return problems.length === before ? { templateId, fields } : undefined;
}

/** Reads the notice variables; `problems` is empty when they are valid. Never throws. */
export function loadNoticeConfig(env: Env): { config: NoticeConfig; problems: string[] } {
  const problems: string[] = [];
  const templates: NoticeConfig['templates'] = {};
  for (const kind of NOTICE_KINDS) {
    const name = NOTICE_ENV[kind];
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') continue;
    const t = parseTemplate(kind, name, raw, problems);
    if (t) templates[kind] = t;
  }
  const state = (env['NOTICE_MINIPROGRAM_STATE'] ?? '').trim() || 'formal';
  if (state !== 'formal' && state !== 'trial' && state !== 'developer') {
    problems.push('NOTICE_MINIPROGRAM_STATE must be formal, trial or developer');
  }
  return {
    config: { templates, miniprogramState: state as MiniprogramState },
    problems,
  };
}

/** Renders a template back into its variable's form (docs, deploy dry-run). */
export function formatTemplate(t: NoticeTemplate): string {
  return [t.templateId, ...t.fields.map((f) => `${f.keyword}=${f.variable}`)].join(' ');
}
