import type { CreateOrderEvent, ProductView } from '../../cloudfunctions/shared/contract';

export interface CartLine {
  productId: string;
  name: string;
  /** Only for the estimate on screen: the server prices the order from `products`. */
  priceFen: number;
  quantity: number;
}

/** Per line; the server decides the real limit, this only stops a stuck stepper. */
export const MAX_QUANTITY = 99;

export function clampQuantity(n: number): number {
  if (!Number.isFinite(n)) return 0;
  return Math.min(MAX_QUANTITY, Math.max(0, Math.trunc(n)));
}

/** Sets the quantity of one product, adding or dropping its line as needed. */
export function setQuantity(cart: CartLine[], product: ProductView, quantity: number): CartLine[] {
  const q = clampQuantity(quantity);
  const rest = cart.filter((l) => l.productId !== product.id);
  if (q === 0) return rest;
  const line = { productId: product.id, name: product.name, priceFen: product.priceFen, quantity: q };
  const at = cart.findIndex((l) => l.productId === product.id);
  if (at < 0) return [...cart, line];
  return cart.map((l, i) => (i === at ? line : l));
}

export function estimateFen(cart: CartLine[]): number {
  return cart.reduce((sum, l) => sum + l.priceFen * l.quantity, 0);
}

export function cartCount(cart: CartLine[]): number {
  return cart.reduce((sum, l) => sum + l.quantity, 0);
}

export function toCreateOrderEvent(cart: CartLine[]): CreateOrderEvent {
  return {
    items: cart.filter((l) => l.quantity > 0).map((l) => ({ productId: l.productId, quantity: l.quantity })),
  };
}

/** The cart travels to the checkout page in its query string. */
export function encodeCart(cart: CartLine[]): string {
  return encodeURIComponent(JSON.stringify(cart));
}

/** Anything malformed (an old link, a hand-edited URL) becomes an empty cart, not a crash. */
export function decodeCart(param: string | undefined): CartLine[] {
  if (!param) return [];
  try {
    const raw: unknown = JSON.parse(decodeURIComponent(param));
    if (!Array.isArray(raw)) return [];
    return raw.flatMap((l: Partial<CartLine>) =>
      typeof l?.productId === 'string' &&
      typeof l.name === 'string' &&
      Number.isSafeInteger(l.priceFen) &&
      Number.isSafeInteger(l.quantity) &&
      (l.quantity ?? 0) > 0
        ? [
            {
              productId: l.productId,
              name: l.name,
              priceFen: l.priceFen!,
              quantity: clampQuantity(l.quantity!),
            },
          ]
        : [],
    );
  } catch {
    return [];
  }
}
