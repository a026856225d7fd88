/**
 * The protocol's fixed names, defined once: the client (`Discovery`) requests them and the
 * simulator serves them, so the two cannot drift apart.
 */

/** @internal The path the reference SDK always requests on the discovery host. */
export const SERVICE_STATUS_PATH = "/streamingAvatar/service_status"

/** @internal The WebSocket path on an instance. */
export const WEBSOCKET_PATH = "/streamingAvatar/ws/v1"

/** @internal The avatar of the reference SDK's examples: what an instance serves unless told otherwise. */
export const DEFAULT_AVATAR_ID = "dvp_Tristan_cloth2_1080P"
