import type { WxParamsIn } from './types';

/**
 * The string APIv2 signs: keys in ASCII order, `k=v` joined by `&`, empty values and
 * `sign` left out. Unknown keys stay in: "微信接口可能增加字段，验证签名时必须支持增加的扩展字段".
 * https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3
 */
export function canonicalString(params: WxParamsIn): string {
  return (
    Object.keys(params)
      .filter((k) => k !== 'sign')
      .filter((k) => {
        const v = params[k];
        return v !== undefined && v !== null && String(v) !== '';
      })
      // The default sort compares UTF-16 code units: ASCII order for APIv2's ASCII names.
      .sort()
      .map((k) => `${k}=${String(params[k])}`)
      .join('&')
  );
}
