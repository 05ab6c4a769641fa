/**
 * The ARM compute gateway behind a lazy load: @azure/arm-compute (the largest SDK the app
 * uses) is imported at the first getVm / runCommand / listVmViews, so a cold start of a trigger
 * that never reads a VM (the alert webhook, the sweep) does not load it. The proxy forwards any
 * method, so a method added to ComputeGateway needs nothing here. Only types come from
 * ./compute.js statically; `import type` is erased, so it adds nothing to start-up.
 */
import type { TokenCredential } from '@azure/identity';
import type { ArmComputeGatewayOptions, ComputeGateway } from './compute.js';
import { lazyGateway } from './lazy-gateway.js';

/** A ComputeGateway that builds `new ArmComputeGateway(credential, options)` on its first call and forwards every method to it. */
export function lazyComputeGateway(credential: TokenCredential, options: ArmComputeGatewayOptions): ComputeGateway {
  return lazyGateway<ComputeGateway>('compute', async () => {
    const { ArmComputeGateway } = await import('./compute.js');
    return new ArmComputeGateway(credential, options);
  });
}
