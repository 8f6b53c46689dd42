/**
 * One id per form submission, reused if that submission is retried, so the backend makes one
 * refund however often the call is repeated. Not a secret: uniqueness per shopper is enough.
 */
export function newRequestId(now = Date.now(), random = Math.random): string {
  let tail = '';
  while (tail.length < 16)
    tail += Math.floor(random() * 36 ** 4)
      .toString(36)
      .padStart(4, '0');
  return `r${now.toString(36)}${tail.slice(0, 16)}`;
}
