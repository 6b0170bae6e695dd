/** Deployment: verified, capped download and atomic activation of signed releases, idempotent by commandId. */
export { Deployer, type DeployerOptions } from './deployer.ts';
export { downloadArtifact, type DownloadOptions, type DownloadResult } from './download.ts';
