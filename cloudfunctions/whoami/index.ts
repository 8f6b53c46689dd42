import { whoami } from '../shared/domain/whoami';
import { callable } from '../shared/runtime/callable';

export const main = callable('whoami', whoami);
