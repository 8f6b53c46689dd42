/**
 * Wires the bill check's one extra effect, the bill downloads, once per cold start
 * (keep-alive socket and CA reused across a warm instance's invocations). One bill per
 * merchant account in use:
 * - the merchant's own (APIv2 and APIv3 are two dialects of one account, so one bill covers
 *   both providers' orders): streamed over APIv2 when APIv2 is enabled, else through APIv3's
 *   tradebill (its file checked against the signed SHA1);
 * - cloudPay's sub-merchant account under Tencent's service provider, through cloudPay.
 */
import type { ShopConfig } from '../config';
import type { BillCheckDeps, BillSource } from '../domain/billcheck';
import type { Deps } from '../domain/deps';
import { wxFailure } from '../domain/deps';
import type { PaymentProvider } from '../providers/port';
import { type BillAnswer, createBillDownloader } from '../wxpay/billdownload';

let cached: { config: Deps['config']; v2: BillSource | undefined } | undefined;

/** A bill held whole in memory (APIv3, cloudPay) as the line stream the check reads. */
async function* linesOf(text: string): AsyncIterable<string> {
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end < 0) {
      yield text.slice(start);
      return;
    }
    yield text.slice(start, end);
    start = end + 1;
  }
}

/**
 * A provider's bill as the check's answer. "No bill" and "not generated yet" are answers,
 * not failures: APIv3 says NO_STATEMENT_EXIST / STATEMENT_CREATING, cloudPay (APIv2 under
 * the hood) "No Bill Exist" / "Bill Creating".
 */
function providerSource(provider: PaymentProvider, owner: BillSource['owner']): BillSource {
  return {
    provider: provider.name,
    ...(owner ? { owner } : {}),
    async download(p): Promise<BillAnswer> {
      const date = `${p.bill_date.slice(0, 4)}-${p.bill_date.slice(4, 6)}-${p.bill_date.slice(6, 8)}`;
      try {
        const csv = await provider.downloadBill(date, 'ALL', { deadlineMs: p.deadlineMs });
        return { kind: 'bill', lines: linesOf(csv), gzip: false };
      } catch (e) {
        const f = wxFailure(e);
        const said = `${f?.errCode ?? ''} ${f?.errCodeDes ?? ''}`;
        if (/NO_STATEMENT_EXIST|no bill exist/i.test(said)) return { kind: 'no-bill', message: said.trim() };
        if (/STATEMENT_CREATING|Bill Creating/i.test(said))
          return { kind: 'not-ready', message: said.trim() };
        throw e;
      }
    },
  };
}

function v2Source(config: ShopConfig): BillSource {
  const w = config.wxpay;
  const downloader = createBillDownloader({
    appid: w.appid,
    mchId: w.mchId,
    apiKey: w.apiKey,
    signType: w.signType,
    baseUrl: w.baseUrl,
    ...(w.caPem ? { caPem: w.caPem } : {}),
    idleTimeoutMs: w.timeoutMs * 2,
  });
  // ALL: payments and refunds in one pass. GZIP: about a quarter of the bytes on the wire.
  return {
    provider: 'v2',
    download: (p) => downloader.download({ ...p, bill_type: 'ALL', tar_type: 'GZIP' }),
  };
}

export function withBills(deps: Deps): BillCheckDeps {
  const { config } = deps;
  if (cached?.config !== config) {
    cached = { config, v2: config.providers.enabled.includes('v2') ? v2Source(config) : undefined };
  }
  const sources: BillSource[] = [];
  const partner = config.providers.partner;
  // A service provider's bill lists all its sub-merchants: ours are named by 特约商户号.
  const own = partner
    ? { appid: partner.subAppid ?? config.wxpay.appid, mchId: config.wxpay.mchId, subMchId: partner.subMchId }
    : undefined;
  if (cached.v2) sources.push(own ? { ...cached.v2, owner: own } : cached.v2);
  else if (deps.wxpay?.byName.v3) sources.push(providerSource(deps.wxpay.byName.v3, own));
  if (deps.wxpay?.byName.cloudpay) {
    // Tencent's service provider is the 商户号 there; the shop's merchant is the 特约商户号.
    sources.push(
      providerSource(deps.wxpay.byName.cloudpay, { appid: config.wxpay.appid, subMchId: config.wxpay.mchId }),
    );
  }
  const memory = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  return { ...deps, bills: sources.length === 1 ? sources[0]! : sources, memory };
}
