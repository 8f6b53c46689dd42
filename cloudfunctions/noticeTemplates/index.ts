import { noticeConfigAtColdStart, noticeTemplates } from '../shared/notices/templates';
import { callableFunction } from '../shared/runtime/function';

const notices = noticeConfigAtColdStart('noticeTemplates', process.env);

export const main = callableFunction('noticeTemplates', {}, (deps, event, caller) =>
  noticeTemplates({ ...deps, notices: { config: notices() } }, event, caller),
);
