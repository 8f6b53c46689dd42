import { noticeTemplates } from '../shared/notices/templates';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('noticeTemplates', { notices: 'all' }, noticeTemplates);
