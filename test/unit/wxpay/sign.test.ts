import { describe, expect, it } from 'vitest';
import {
  canonicalString,
  nonceStr,
  paySign,
  sign,
  verify,
  withSign,
} from '../../../cloudfunctions/shared/wxpay';

// Official 签名算法 example (chapter=4_3), as also pinned in WxJava's SignUtilsTest.
const KEY = '192006250b4c09247ec02edce69f6a2d';
const PARAMS = {
  appid: 'wxd930ea5d5a258f4f',
  body: 'test',
  device_info: '1000',
  mch_id: '10000100',
  nonce_str: 'ibuaiVcKdpRxkhJA',
};

describe('canonicalString', () => {
  it('sorts keys by ASCII and joins k=v with &', () => {
    expect(
      canonicalString({
        mch_id: '10000100',
        body: 'test',
        appid: 'wxd930ea5d5a258f4f',
        device_info: '1000',
        nonce_str: 'ibuaiVcKdpRxkhJA',
      }),
    ).toBe('appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA');
  });
  it('drops empty values and the sign itself but keeps sign_type and unknown fields', () => {
    expect(
      canonicalString({
        b: '',
        a: '1',
        sign: 'X',
        sign_type: 'MD5',
        z_new_field: 'v',
        n: null,
        u: undefined,
      }),
    ).toBe('a=1&sign_type=MD5&z_new_field=v');
  });
  it('is case sensitive: upper-case keys sort before lower-case ones', () => {
    expect(canonicalString({ b: '1', B: '2', a: '3' })).toBe('B=2&a=3&b=1');
  });
});

describe('sign', () => {
  it('reproduces the official MD5 vector', () => {
    expect(sign(PARAMS, KEY, 'MD5')).toBe('9A0A8659F005D6984697E2CA0A9CF3B7');
  });
  it('reproduces the official HMAC-SHA256 vector', () => {
    expect(sign(PARAMS, KEY, 'HMAC-SHA256')).toBe(
      '6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6',
    );
  });
  it('reproduces the wechatpy library vectors', () => {
    expect(sign({ test1: 'test1', test2: 'test2' }, KEY, 'MD5')).toBe('1E3A8D73B5A4AEE787C0F68B5DAB8520');
    expect(sign({ test1: 'test1', test2: 'test2' }, KEY, 'HMAC-SHA256')).toBe(
      'EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659',
    );
  });
  it('refuses an empty key with a typed error', () => {
    expect(() => sign(PARAMS, '', 'MD5')).toThrow(expect.objectContaining({ code: 'WXPAY_KEY_MISSING' }));
  });
});

describe('verify', () => {
  for (const signType of ['MD5', 'HMAC-SHA256'] as const) {
    it(`accepts its own ${signType} signature and rejects any change`, () => {
      const signed = withSign(PARAMS, KEY, signType);
      expect(verify(signed, KEY, signType)).toBe(true);
      expect(verify({ ...signed, body: 'test2' }, KEY, signType)).toBe(false);
      expect(verify(signed, `${KEY.slice(0, -1)}e`, signType)).toBe(false);
    });
  }
  it('is false when the sign is missing or empty', () => {
    expect(verify(PARAMS, KEY, 'MD5')).toBe(false);
    expect(verify({ ...PARAMS, sign: '' }, KEY, 'MD5')).toBe(false);
  });
  it('uses the configured sign type: an HMAC notify without sign_type verifies as HMAC', () => {
    const signed = withSign(PARAMS, KEY, 'HMAC-SHA256');
    const { sign_type: _dropped, ...withoutType } = signed as Record<string, string>;
    // sign_type was signed; WeChat's notify both signs and sends it, or neither. Re-sign without it.
    const notify = { ...withoutType, sign: sign(withoutType, KEY, 'HMAC-SHA256') };
    expect(verify(notify, KEY, 'HMAC-SHA256')).toBe(true);
    expect(verify(notify, KEY, 'MD5')).toBe(false);
  });
  it('is false, never an exception, for a sign of the right length that is not all hex', () => {
    for (const signType of ['MD5', 'HMAC-SHA256'] as const) {
      const good = sign(PARAMS, KEY, signType);
      for (const bad of [
        `Z${good.slice(1)}`,
        `${good.slice(0, -1)}Z`,
        `${good.slice(0, 10)} ${good.slice(11)}`,
      ]) {
        expect(bad).toHaveLength(good.length);
        expect(verify({ ...PARAMS, sign: bad }, KEY, signType)).toBe(false);
      }
    }
  });
  it('accepts a lower-case hex sign', () => {
    const s = sign(PARAMS, KEY, 'MD5').toLowerCase();
    expect(verify({ ...PARAMS, sign: s }, KEY, 'MD5')).toBe(true);
  });
});

describe('paySign', () => {
  it('reproduces the official wx.requestPayment example', () => {
    const p = paySign(
      {
        appId: 'wxd678efh567hg6787',
        timeStamp: '1490840662',
        nonceStr: '5K8264ILTKCH16CQ2502SI8ZNMTM67VS',
        package: 'prepay_id=wx2017033010242291fcfe0db70013231072',
        signType: 'MD5',
      },
      'qazwsxedcrfvtgbyhnujmikolp111111',
    );
    expect(p).toEqual({
      timeStamp: '1490840662',
      nonceStr: '5K8264ILTKCH16CQ2502SI8ZNMTM67VS',
      package: 'prepay_id=wx2017033010242291fcfe0db70013231072',
      signType: 'MD5',
      paySign: '22D9B4E54AB1950F51E0649E8810ACD6',
    });
  });
  it('signs with the order sign type, so an HMAC order gets an HMAC paySign', () => {
    const p = paySign(
      { appId: 'wx1', timeStamp: '1', nonceStr: 'n', package: 'prepay_id=x', signType: 'HMAC-SHA256' },
      KEY,
    );
    expect(p.signType).toBe('HMAC-SHA256');
    expect(p.paySign).toHaveLength(64);
  });
});

describe('nonceStr', () => {
  it('is 32 alphanumeric characters and does not repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const n = nonceStr();
      expect(n).toMatch(/^[A-Za-z0-9]{32}$/);
      seen.add(n);
    }
    expect(seen.size).toBe(1000);
  });
});
