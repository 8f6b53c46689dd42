App({
  onLaunch() {
    // DYNAMIC_CURRENT_ENV on the server; here the first environment bound to the app.
    wx.cloud.init({ traceUser: true });
  },
});
