/**
 * undici dispatchers for tests of the SDK's HTTP edges: one that counts what it carries (to check
 * that a given dispatcher is used), one that aborts a signal the moment a response with a given
 * status starts (to race an abort against a failure).
 */
import { Agent, type Dispatcher } from 'undici';

/** An undici Agent that counts the requests dispatched through it, and records their origins. */
export class CountingAgent extends Agent {
  dispatched = 0;
  readonly origins: string[] = [];
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.dispatched += 1;
    this.origins.push(new URL(String(options.origin)).origin);
    return super.dispatch(options, handler);
  }
}

/** An Agent that fires `controller.abort()` the moment a response with `status` starts (before the SDK sees it). */
export class AbortOnStatusAgent extends Agent {
  constructor(
    private readonly status: number,
    private readonly controller: AbortController,
  ) {
    super();
  }
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const { status, controller } = this;
    const fire = (statusCode: unknown) => {
      if (statusCode === status) controller.abort(new Error('cancelled as the failure arrived'));
    };
    // Wrap whichever handler API undici calls: onHeaders(status, ...) or onResponseStart(controller, status, ...).
    const racing = new Proxy(handler, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        const fn = value as (...args: unknown[]) => unknown;
        if (prop === 'onHeaders') return (...args: unknown[]) => (fire(args[0]), fn.apply(target, args));
        if (prop === 'onResponseStart') return (...args: unknown[]) => (fire(args[1]), fn.apply(target, args));
        return fn.bind(target);
      },
    });
    return super.dispatch(options, racing);
  }
}
