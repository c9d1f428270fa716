// Holds the modules to their declarations: the JavaScript, as TypeScript
// infers it from the source (allowJs), must be assignable to what types/
// declares. A method the declarations promise and the modules lack, a
// result or a state field that does not fit, or an export that was renamed,
// fails `npm run check`.

import type * as Declared from "../types/index.js";
import type * as DeclaredReact from "../types/react.js";
import * as client from "../../client_demo/pgbell-client.js";
import * as react from "../src/react.js";

type Instance = InstanceType<typeof client.PgBellClient>;
type Missing<D, I> = Exclude<keyof D, keyof I>;

export const noMemberMissing: [Missing<Declared.PgBellClient, Instance>] extends [never]
  ? true
  : Missing<Declared.PgBellClient, Instance> = true;
// the typed listeners narrow EventTarget's own, which is the point of them
type Events = "addEventListener" | "removeEventListener";
export const instance: Omit<Declared.PgBellClient, Events> = null as unknown as Instance;
export const error: typeof Declared.PgBellError = client.PgBellError;

export const noBindingMissing: [Missing<typeof DeclaredReact, typeof react>] extends [never]
  ? true
  : Missing<typeof DeclaredReact, typeof react> = true;
export const bindings: typeof DeclaredReact = react; // src/react.js has JSDoc types
