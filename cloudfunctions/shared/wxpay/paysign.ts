import type { RequestPaymentParams } from '../contract';
import { sign } from './sign';
import type { SignType } from './types';

export interface PaySignInput {
  appId: string;
  timeStamp: string;
  nonceStr: string;
  /** `prepay_id=...` */
  package: string;
  /** Must be the sign type of the unifiedorder call: "需与统一下单的签名类型一致". */
  signType: SignType;
}

/** The second signature, over appId/timeStamp/nonceStr/package/signType (case as shown). */
export function paySign(input: PaySignInput, key: string): RequestPaymentParams {
  const { appId, timeStamp, nonceStr, package: pkg, signType } = input;
  const signed = sign({ appId, timeStamp, nonceStr, package: pkg, signType }, key, signType);
  return { timeStamp, nonceStr, package: pkg, signType, paySign: signed };
}

export type { RequestPaymentParams };
