// tenpay ships no types; the bench uses only these members (tenpay@2.1.18 lib/index.js, lib/util.js).
declare module 'tenpay' {
  export default class Payment {
    constructor(config: { appid: string; mchid: string; partnerKey: string; notify_url?: string });
    _getSign(params: Record<string, unknown>, type?: string): string;
    _parse(xml: string, type: string, signType?: string): Promise<Record<string, unknown>>;
  }
}

declare module 'tenpay/lib/util' {
  export function buildXML(obj: Record<string, unknown>, rootName?: string): string;
  export function parseXML(xml: string): Promise<Record<string, unknown>>;
}
