import { describe, expect, it } from 'vitest';
import {
  type CartLine,
  decodeCart,
  encodeCart,
  estimateFen,
  MAX_QUANTITY,
  setQuantity,
  toCreateOrderEvent,
} from '../../miniprogram/utils/cart';

const tea = { id: 'tea', name: '绿茶', priceFen: 1990, image: '' };
const cup = { id: 'cup', name: '杯子', priceFen: 1, image: '' };

describe('cart', () => {
  it('adds, updates and drops lines and estimates in fen', () => {
    let cart: CartLine[] = [];
    cart = setQuantity(cart, tea, 2);
    cart = setQuantity(cart, cup, 3);
    cart = setQuantity(cart, tea, 1);
    expect(cart.map((l) => [l.productId, l.quantity])).toEqual([
      ['tea', 1],
      ['cup', 3],
    ]);
    expect(estimateFen(cart)).toBe(1993);
    expect(setQuantity(cart, tea, 0).map((l) => l.productId)).toEqual(['cup']);
    expect(setQuantity(cart, cup, 1000)[1]?.quantity).toBe(MAX_QUANTITY);
  });

  it('sends only product ids and quantities to createOrder, never prices', () => {
    expect(toCreateOrderEvent(setQuantity([], tea, 2))).toEqual({
      items: [{ productId: 'tea', quantity: 2 }],
    });
  });

  it('survives the query string round trip and drops malformed lines', () => {
    const cart = setQuantity(setQuantity([], tea, 2), cup, 1);
    expect(decodeCart(encodeCart(cart))).toEqual(cart);
    expect(
      decodeCart(encodeURIComponent('[{"productId":"x","name":"n","priceFen":1.5,"quantity":1}]')),
    ).toEqual([]);
    expect(decodeCart('%E0%A4%A')).toEqual([]);
    expect(decodeCart(undefined)).toEqual([]);
  });
});
