Component({
  data: { title: '小店' },
});
