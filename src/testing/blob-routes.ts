/** Route names of Azure blob operations, as the fake blob service and the fault proxy name requests (for fault rules and request logs). */

/** The route of a blob request. */
export type FakeBlobRoute = 'blob.putBlob' | 'blob.putBlock' | 'blob.putBlockList' | 'blob.getBlockList' | 'blob.getBlob' | 'blob.other';

/** The route of an Azure blob request, from its method and `comp` parameter. */
export function blobRouteOf(method: string, url: URL): FakeBlobRoute {
  const comp = url.searchParams.get('comp');
  const m = method.toUpperCase();
  if (m === 'PUT' && comp === null) return 'blob.putBlob';
  if (m === 'PUT' && comp === 'block') return 'blob.putBlock';
  if (m === 'PUT' && comp === 'blocklist') return 'blob.putBlockList';
  if ((m === 'GET' || m === 'HEAD') && comp === 'blocklist') return 'blob.getBlockList';
  if ((m === 'GET' || m === 'HEAD') && comp === null) return 'blob.getBlob';
  return 'blob.other';
}
