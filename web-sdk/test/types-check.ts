// Type-checked (tsc --noEmit, strict) by web-sdk/test/run: the package's declarations name
// the SDK's real types, and misuse is a type error (each @ts-expect-error must fail to
// compile, or tsc reports the directive as unused).
import init, { PeerbridgeWeb } from "../pkg/peerbridge_web.js";
import type { Event, HistoryPage, OpenedFlag, SessionInfo } from "../pkg/peerbridge_web.js";

export async function typed(): Promise<void> {
  await init();
  const client: PeerbridgeWeb = await PeerbridgeWeb.openOnThisBrowser(location.origin, "acct", null);
  const session: SessionInfo = await client.enroll("CODE", "Browser");
  const role: "service_user" | "peer" | "hp" | "clinic_admin" | "operator" = session.role;
  const id: string = await client.sendText("conversation", "hei");
  // @ts-expect-error a message id is a string, not a number
  const wrong: number = await client.sendText("conversation", "hei");
  const page: HistoryPage = await client.history("conversation", null, 50);
  for (const e of page.events) {
    if (e.type === "text") {
      const body: string = e.body;
      const seq: number = e.seq;
      void [body, seq];
    }
    // @ts-expect-error events are a closed union of known types
    if (e.type === "no_such_event") void e;
  }
  const flag: OpenedFlag = await client.openFlag("flag");
  const lines: string[] = flag.lines.map((l) => l.text);
  await client.start((events: Event[]) => void events.length, (error) => void error.code);
  const risk = PeerbridgeWeb.detectRisk("tekst");
  if (risk) void risk.severity;
  void [role, id, wrong, lines];
}
