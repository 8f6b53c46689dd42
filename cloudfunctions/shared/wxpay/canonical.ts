import type { WxParamsIn } from './types';

/**
 * The string APIv2 signs: keys in ASCII order, `k=v` joined by `&`, empty values and
 * `sign` left out. Unknown keys stay in: "微信接口可能增加字段，验证签名时必须支持增加的扩展字段".
 * https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3
 */
export function canonicalString(params: WxParamsIn): string {
  const keys: string[] = [];
  for (const k of Object.keys(params)) {
    const v = params[k];
    if (k !== 'sign' && v !== undefined && v !== null && v !== '') keys.push(k);
  }
  // The default sort compares UTF-16 code units, which for these ASCII names is ASCII order.
  keys.sort();
  let s = '';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    s += `${i === 0 ? '' : '&'}${k}=${String(params[k])}`;
  }
  return s;
}
