import * as Data from "effect/Data"
import type * as AvatarSession from "../../AvatarSession.js"

/** The constructors and matchers of `AvatarSession.SessionState`. */
export const SessionState = Data.taggedEnum<AvatarSession.SessionState>()

/** The constructors and matchers of `AvatarSession.Speaking`. */
export const Speaking = Data.taggedEnum<AvatarSession.Speaking>()
