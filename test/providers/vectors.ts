/**
 * Published APIv3 test vectors, pinned. The RSA key is the test key published in the
 * official Go SDK's tests (wechatpay-apiv3/wechatpay-go, utils/sign_test.go
 * `testAlgorithmPrivateKeyStr`, written there as "TESTING KEY"); its self-signed certificate
 * (serial D7CE59D1F522D701) in core/notify/notify_test.go holds the same key pair, so one key
 * plays merchant and platform. It is public test material, never a real merchant's key.
 */
export const GO_SDK_TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDZUJN33V+dSfvd
fL0Mu+39XrZNXFFMQSy1V15FpncHeV47SmV0TzTqZc7hHB0ddqAdDi8Z5k3TKqb7
6sOwYr5TcAfuR6PIPaleyE0/0KrljBum2Isa2Nyq7Dgc3ElBQ6YN4l/a+DpvKaz1
FSKmKrhLNskqokWVSlu4g8OlKlbPXQ9ibII14MZRQrrkTmHYHzfi7GXXM0thAKuR
0HNvyhTHBh4/lrYM3GaMvmWwkwvsMavnOex6+eioZHBOb1/EIZ/LzC6zuHArPpyW
3daGaZ1rtQB1vVzTyERAVVFsXXgBHvfFud3w3ShsJYk8JvMwK2RpJ5/gV0QSARcm
LDRUAlPzAgMBAAECggEBAMc7rDeUaXiWv6bMGbZ3BTXpg1FhdddnWUnYE8HfX/km
OFI7XtBHXcgYFpcjYz4D5787pcsk7ezPidAj58zqenuclmjKnUmT3pfbI5eCA2v4
C9HnbYDrmUPK1ZcADtka4D6ScDccpNYNa1g2TFHzkIrEa6H+q7S3O2fqxY/DRVtN
0JIXalBb8daaqL5QVzSmM2BMVnHy+YITJWIkP2a3pKs9C0W65JGDsnG0wVrHinHF
+cnhFZIbaPEI//DAFMc9NkrWOKVRTEgcCUxCFaHOZVNxDWZD7A2ZfJB2rK6eg//y
gEiFDR2h6mTaDowMB4YF2n2dsIO4/dCG8vPHI20jn4ECgYEA/ZGu6lEMlO0XZnam
AZGtiNgLcCfM/C2ZERZE7QTRPZH1WdK92Al9ndldsswFw4baJrJLCmghjF/iG4zi
hhBvLnOLksnZUfjdumxoHDWXo2QBWbI5QsWIE7AuTiWgWj1I7X4fCXSQf6i+M/y2
6TogQ7d0ANpZFyOkTNMn/tiJvLECgYEA22XqlamG/yfAGWery5KNH2DGlTIyd6xJ
WtJ9j3jU99lZ0bCQ5xhiBbU9ImxCi3zgTsoqLWgA/p00HhNFNoUcTl9ofc0G3zwT
D1y0ZzcnVKxGJdZ6ohW52V0hJStAigtjYAsUgjm7//FH7PiQDBDP1Wa6xSRkDQU/
aSbQxvEE8+MCgYEA3bb8krW7opyM0XL9RHH0oqsFlVO30Oit5lrqebS0oHl3Zsr2
ZGgoBlWBsEzk3UqUhTFwm/DhJLTSJ/TQPRkxnhQ5/mewNhS9C7yua7wQkzVmWN+V
YeUGTvDGDF6qDz12/vJAgSwDDRym8x4NcXD5tTw7mmNRcwIfL22SkysThIECgYAV
BgccoEoXWS/HP2/u6fQr9ZIR6eV8Ij5FPbZacTG3LlS1Cz5XZra95UgebFFUHHtC
EY1JHJY7z8SWvTH8r3Su7eWNaIAoFBGffzqqSVazfm6aYZsOvRY6BfqPHT3p/H1h
Tq6AbBffxrcltgvXnCTORjHPglU0CjSxVs7awW3AEQKBgB5WtaC8VLROM7rkfVIq
+RXqE5vtJfa3e3N7W3RqxKp4zHFAPfr82FK5CX2bppEaxY7SEZVvVInKDc5gKdG/
jWNRBmvvftZhY59PILHO2X5vO4FXh7suEjy6VIh0gsnK36mmRboYIBGsNuDHjXLe
BDa+8mDLkWu5nHEhOxy2JJZl
-----END PRIVATE KEY-----
`;

/** wechatpay-go utils/sign_test.go: SignSHA256WithRSA("source", key). */
export const V1_SIGNATURE =
  'BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg==';

/** wechatpay-go core/notify/notify_test.go TestHandler_ParseNotifyRequest (signature part). */
export const V2_NOTIFY = {
  nowS: 1624523846,
  serial: 'D7CE59D1F522D701',
  headers: {
    'Wechatpay-Nonce': 'EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz',
    'Wechatpay-Timestamp': '1624523846',
    'Wechatpay-Serial': 'D7CE59D1F522D701',
    'Wechatpay-Signature':
      'tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q==',
  },
  body: '{"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17","create_time":"2021-06-24T16:37:26+08:00","resource_type":"encrypt-resource","event_type":"PAYSCORE.USER_OPEN_SERVICE","summary":"签约成功","resource":{"original_type":"payscore","algorithm":"AEAD_AES_256_GCM","ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==","associated_data":"payscore","nonce":"Kj7QIyUiYx1q"}}',
};

/** wechatpay-axios-plugin tests/lib/aes.test.js: 32-byte key, a 16-byte IV (not WeChat's 12). */
export const V4_AES = {
  key: '0123456789abcdef0123456789abcdef',
  iv: '0123456789abcdef',
  hello: { plaintext: 'hello', aad: 'world', ciphertext: 'APoZlYpivU3HjbAiB4CvW1rAFr8J' },
  empty: { plaintext: '', aad: '', ciphertext: 'GvpmmdtYwexXIPhySs9Tlg==' },
};

/** Recomputed with Node's crypto: the V4 key, WeChat's 12-character nonce. */
export const V5_AES = {
  key: '0123456789abcdef0123456789abcdef',
  nonce: '0123456789ab',
  plaintext: 'hello',
  aad: 'world',
  ciphertext: '8cyLViyNtc/bBmbxDwyAVLDTpT+o',
};

/** The official doc examples' inputs, signed with the test key. */
export const V6 = {
  paySign: {
    appId: 'wx8888888888888888',
    timeStamp: '1414561699',
    nonceStr: '5K8264ILTKCH16CQ2502SI8ZNMTM67VS',
    package: 'prepay_id=wx201410272009395522657a690389285100',
    signature:
      'UV+EKQ3OdnOkUbbKaVi53s/67T59JbHx9gc9MaWoQEOaiZH+uYMByfW2MWXTZW1gnOXl1CqwzHtx7QUxfatSdSxgBhbNhJx1QaxkP0zSXAgXIoWPAktOlj9n/phfOH95rNl8bHzRDUoNAMQmfQy8SHGooKtEU6/87nWXHhcYarv/nmtgAJcwsV+lGJQ4jLZhGl5BaAvpLW1Xg8yYg1DXNjik2SPK8d+4FRSkW671wIvxXQCYqG3mi3FvxP5XJ3OBVbPk4GRf/8wi2r2eiqXYd5e4mRMIAOGxqape9Cm46kxrjlHF0uM+wSir4Nychn2H5geUh2YvE8vJJMAqmkN2gg==',
  },
  authorization: {
    method: 'GET',
    url: '/v3/certificates',
    timestamp: '1554208460',
    nonce: '593BEC0C930BF1AFEB40B4A08C8FB242',
    signature:
      'RjVFHMcrr9NsM4SiNmpFx6QPR99WztxatBshmr/6f7pXnt2YSPAhmNrEEAjWgpOcf5Zxbwl2qdPACOsEOeGrnLD81nVK3ucJq50iD0FAyF11knd1C9ic7zV9Jg3zao0+Wx3yAI6jXx6NLBEfNNspCazrQ+IHsUi04tubSBsT+4LHT9j0rL9axFBl7jVYe7uZ1ZQzap8EokLHDQbYw6qPEOs85+a2rnudh3TCPe81oUfe0zPqwEE6sWxxeSCYx+1mbURsOAN4Z8/uKgOIZxbDAkqYWFb7VOaHFeejC1rsxUc7wkw0zQWxae1giswROXii1DorwdJ3CGlPchx0PyDjkQ==',
  },
};

/** A complete AES-256 TRANSACTION.SUCCESS notify, signed with the test key. */
export const V7_NOTIFY = {
  apiV3Key: '0123456789abcdef0123456789abcdef',
  nowS: 1624523846,
  serial: 'D7CE59D1F522D701',
  headers: {
    'Wechatpay-Timestamp': '1624523846',
    'Wechatpay-Nonce': 'EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz',
    'Wechatpay-Serial': 'D7CE59D1F522D701',
    'Wechatpay-Signature':
      'F6/k+K9WIl6MBQEaoH1pJ6tKdG2gpZmL3w0DQ3pa7EovabAFMWLZv++3i/bydS8KUJKEw1N36qlEzoGWtd/S4/ieSVloTDlkqpxY/08V9Onoqmpm/P2TNeT42oioxR9K3lSTyInaZXDDnllYlFiN7Z5oOWo3yl46K2vX0FJGsP/M76Hf+SLmQ/ubcOv6Ps/zHiLOobilVkytTIMnpV5j02eQQ+UYPO3xKSW34Qg2C5waFy+QQlQAs8XVtPqiEEw8RnIuZR6pjcQU+UdVns1Jyv/TpRZ/4KaS469Se27kgCYJq+gDeH4oUPph3uM68peHYca45I8+Br4Ef4o45M7grQ==',
  },
  body: '{"id":"EV-2018022511223320873","create_time":"2015-05-20T13:29:35+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"DUcegK33A8MEOgdJt8PWwAdrzVDy3c3BTENCdjZ/7K2gbkFM2sU/cZ/UPNrLir4DXaSrqBdzgGy/sMCWIPKVQdMoXpY4xG4iYhF7TH0MBs4T7FaM9hoFjn/sa9TCWtjLTRzZiknVkW9IXW37a35VmVaeZyQYgusGnnisNS4C5dQEMLenoEF4L3PO4m3uteC+aMmWJMtSbZltG3H2Cu2Vou2Js2PVFnyTfOk0kYJAGpoCL2ommjUrvbBvauITRk+k/y/n+JuGpdOpOis3M/eGUHdtAIyAvV/ITkfIG5HrFyBdGa2YLbf+GInakMOOp3keLCkCrXxqpGgj/93tkVOlMxLsBE4+v6PxO4W/XgV/4wFoXgWwZWtITpWXSw2PhtlRqB3wYR1oLOQLchwJxi52V1ku3ClmMKFUp+fxqVUY9Xd2v0aYu790sSKRsOWHztB93+hiJGRzz5d0g5EFcVOBDeBJ+CtvEvqoSFSV3DzAqI0D3zzR060zfnbXXysdautyGRF2j6wmjU07c3XWZ1AnERmofPEhEAoAoECGxd3QJSZbMotFyNGjepgqsnJTnggLPdbU4dcPwlCRzFjhd0FX","associated_data":"transaction","nonce":"fdasflkja484"}}',
  plaintext:
    '{"mchid":"1230000109","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000000000000000000000000","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}',
};
