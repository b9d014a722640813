/** Names of the login service's units (systemd) and agent (launchd), shared by `service` and autostart. */
export const SYSTEMD_SOCKET_UNIT = 'tokenbroker.socket';
export const SYSTEMD_SERVICE_UNIT = 'tokenbroker.service';
export const LAUNCHD_LABEL = 'com.nordicsemi.tokenbroker';
export const LAUNCHD_PLIST = `${LAUNCHD_LABEL}.plist`;
