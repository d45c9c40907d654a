/**
 * `isAstroError(err, code)` narrows to the class that carries the code, so the class's own fields
 * type-check. The type assertions are checked by `npm run typecheck`; the runtime ones by vitest.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  AstroApiError,
  AstroError,
  AstroRolloutError,
  ImageBuildError,
  isAstroError,
  ProjectTestsError,
  type AstroErrorClassMap,
  type AstroErrorCode,
  type AstroErrorFor,
  type RolloutSnapshot,
} from '../../src/index.js';

describe('isAstroError narrowing', () => {
  it('narrows to the class of the code', () => {
    const err: unknown = new AstroRolloutError('ASTRO_ROLLOUT_TIMEOUT', 'late', { polls: 3, elapsedMs: 10 });
    if (!isAstroError(err, 'ASTRO_ROLLOUT_TIMEOUT')) throw new Error('not narrowed');
    expectTypeOf(err.lastState).toEqualTypeOf<RolloutSnapshot>();
    expectTypeOf(err.code).toEqualTypeOf<'ASTRO_ROLLOUT_TIMEOUT'>();
    expect(err.lastState.polls).toBe(3);
  });

  it('narrows a union of codes to the union of their classes, and switches on code', () => {
    const err: unknown = new AstroApiError('ASTRO_API_NOT_FOUND', 'gone', { status: 404, method: 'GET', path: '/x' });
    const code = Math.random() > 2 ? 'ASTRO_IMAGE_BUILD_FAILED' : 'ASTRO_API_NOT_FOUND';
    if (!isAstroError(err, code)) throw new Error('not narrowed');
    if (err.code === 'ASTRO_API_NOT_FOUND') {
      expectTypeOf(err).toMatchTypeOf<AstroApiError>();
      expect(err.status).toBe(404);
    } else {
      expectTypeOf(err).toMatchTypeOf<ImageBuildError>();
      expectTypeOf(err.outputTail).toEqualTypeOf<string[]>();
    }
  });

  it('without a code, narrows to AstroError', () => {
    const err: unknown = new AstroError('ASTRO_ABORTED', 'stop');
    if (!isAstroError(err)) throw new Error('not narrowed');
    expectTypeOf(err).toEqualTypeOf<AstroError>();
    expect(isAstroError(err, 'ASTRO_TIMEOUT')).toBe(false);
  });

  it('maps the parse failure of the tests gate to ProjectTestsError', () => {
    expectTypeOf<AstroErrorFor<'ASTRO_IMAGE_PARSE_FAILED'>>().toMatchTypeOf<ProjectTestsError>();
    expectTypeOf<AstroErrorFor<'ASTRO_IMAGE_BUILD_FAILED'>['step']>().toEqualTypeOf<string | undefined>();
  });

  it('lists a class for every code (a new code needs its entry in AstroErrorClassMap)', () => {
    expectTypeOf<Exclude<AstroErrorCode, keyof AstroErrorClassMap>>().toEqualTypeOf<never>();
  });
});
