import type { ListProductsResult } from '../contract';
import type { Caller } from '../runtime/callable';
import type { Deps } from './deps';
import { COLLECTIONS, type ProductDoc, productView } from './model';
import { invalid, onlyFields } from './validate';

const PAGE = 20;

export async function listProducts(
  deps: Deps,
  event: Record<string, unknown>,
  _caller: Caller,
): Promise<ListProductsResult> {
  onlyFields(event, ['cursor']);
  const raw = event['cursor'];
  // The catalogue is small and rarely changes, so an offset cursor is enough here.
  let skip = 0;
  if (raw !== undefined && raw !== null && raw !== '') {
    if (typeof raw !== 'string' || !/^\d{1,5}$/.test(raw)) throw invalid('cursor is invalid');
    skip = Number(raw);
  }
  const rows = await deps.store.find<ProductDoc>(
    COLLECTIONS.products,
    { onSale: true },
    {
      orderBy: [
        ['sort', 'asc'],
        ['_id', 'asc'],
      ],
      skip,
      limit: PAGE + 1,
    },
  );
  return {
    items: rows.slice(0, PAGE).map(productView),
    nextCursor: rows.length > PAGE ? String(skip + PAGE) : null,
  };
}
