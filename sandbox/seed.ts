/** Demo catalogue for the local shop. Prices are integer fen, as everywhere. */
import type { ProductDoc } from '../cloudfunctions/shared/domain/model';

export const DEMO_PRODUCTS: ProductDoc[] = [
  {
    _id: 'tea-longjing',
    name: '西湖龙井 Longjing tea 50g',
    priceFen: 6800,
    image: '/images/tea.png',
    description: '明前龙井，一罐五十克',
    onSale: true,
    sort: 1,
  },
  {
    _id: 'mooncake-box',
    name: '广式月饼礼盒 Mooncakes',
    priceFen: 12800,
    image: '/images/mooncake.png',
    description: '四种口味，八只装',
    onSale: true,
    sort: 2,
  },
  {
    _id: 'chopsticks',
    name: '竹筷五双 Bamboo chopsticks',
    priceFen: 1990,
    image: '/images/chopsticks.png',
    onSale: true,
    sort: 3,
  },
  {
    _id: 'sticker',
    name: '贴纸 Sticker',
    priceFen: 1,
    image: '/images/sticker.png',
    description: '一分钱测试商品 1-fen test item',
    onSale: true,
    sort: 4,
  },
  {
    _id: 'retired-mug',
    name: '旧款杯子 Old mug',
    priceFen: 3900,
    image: '/images/mug.png',
    onSale: false,
    sort: 5,
  },
];

export const COLLECTION_NAMES = [
  'products',
  'orders',
  'refunds',
  'payment_events',
  'notices',
  'bill_checks',
  'caller_limits',
] as const;
