/**
 * Setup for `npm run test:mutation` only. A property that fails under a mutant has done its
 * job: shrinking the counterexample would re-run the whole model dozens of times per mutant.
 */
import fc from 'fast-check';

fc.configureGlobal({ endOnFailure: true });
