/**
 * A confirmation before anything that cannot be taken back (money moving, an application
 * withdrawn, an order cancelled). Resolves true only on the confirm button; a dialog that
 * cannot open counts as no.
 */
export function confirmModal(opts: {
  title: string;
  content: string;
  confirmText?: string;
}): Promise<boolean> {
  return new Promise((resolve) => {
    wx.showModal({
      title: opts.title,
      content: opts.content,
      // WeChat cuts confirmText at 4 characters.
      ...(opts.confirmText ? { confirmText: opts.confirmText.slice(0, 4) } : {}),
      success: (res) => resolve(res.confirm === true),
      fail: () => resolve(false),
    });
  });
}

/** What the shopper is told after cancelOrder, by its outcome. */
export const CANCEL_OUTCOME_MESSAGE = {
  CLOSED: '订单已取消',
  CLOSING: '订单已取消',
  PAID: '订单已支付，无法取消；如需退款请申请退款',
} as const;
