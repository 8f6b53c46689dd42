App({
  onLaunch() {
    // The functions use DYNAMIC_CURRENT_ENV; here `env` is the environment the shop is deployed
    // to, written by `npm run configure` from CLOUDBASE_ENV_ID (without it: the first one bound).
    wx.cloud.init({ traceUser: true });
  },
});
