import { whoami } from '../shared/domain/whoami';
import { callableFunction } from '../shared/runtime/function';

export const main = callableFunction('whoami', {}, whoami);
