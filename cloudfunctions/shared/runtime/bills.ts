/**
 * Wires the bill check's one extra effect, the streaming bill download, once per cold start
 * (keep-alive socket and CA reused across a warm instance's invocations).
 */
import type { BillCheckDeps, BillSource } from '../domain/billcheck';
import type { Deps } from '../domain/deps';
import { createBillDownloader } from '../wxpay/billdownload';

let cached: { config: Deps['config']; source: BillSource } | undefined;

export function withBills(deps: Deps): BillCheckDeps {
  if (cached?.config !== deps.config) {
    const w = deps.config.wxpay;
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
    const source: BillSource = {
      download: (p) => downloader.download({ ...p, bill_type: 'ALL', tar_type: 'GZIP' }),
    };
    cached = { config: deps.config, source };
  }
  const memory = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  return { ...deps, bills: cached.source, memory };
}
