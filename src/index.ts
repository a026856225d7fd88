/**
 * @since 0.1.0
 */
export * as Audio from "./Audio.js"
export * as AvatarClient from "./AvatarClient.js"
export * as AvatarConfig from "./AvatarConfig.js"
export * as AvatarError from "./AvatarError.js"
export * as AvatarMetrics from "./AvatarMetrics.js"
export * as AvatarSession from "./AvatarSession.js"
export * as AvatarSimulator from "./AvatarSimulator.js"
export * as Connection from "./Connection.js"
export * as Discovery from "./Discovery.js"
export * as Heartbeat from "./Heartbeat.js"
export * as NodeAudio from "./NodeAudio.js"
export * as Protocol from "./Protocol.js"
export type {
  AgoraParams,
  AudioChunks,
  Callbacks as StreamingAvatarCallbacks,
  CallOptions,
  Options as StreamingAvatarClientOptions
} from "./StreamingAvatarClient.js"
// the Promise facade, for programs not written with Effect: the reference SDK's client (its
// declarations carry their own docs, which TypeDoc checks)
export { createClient, StreamingAvatarClient } from "./StreamingAvatarClient.js"
