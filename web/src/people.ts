// People of a clinic as the console shows them: without names, unless the HP asked (each
// name look-up is an audited read on the server).
import type { UserSummary } from "peerbridge-web";
import i18n from "./i18n";
import { client } from "./sdk";
import { when } from "./format";

/** The person's name when it was looked up, else role and enrolment time. */
export function userLabel(u: UserSummary, names: Record<string, string>): string {
  return (
    names[u.id] ??
    i18n.t("people.enrolled", { role: i18n.t(`role.${u.role}`), when: when(u.created_at) })
  );
}

/** Looks up the names of `users` (one audited read each). */
export async function lookUpNames(
  clinic: string,
  users: UserSummary[],
): Promise<Record<string, string>> {
  const c = await client();
  const found: Record<string, string> = {};
  for (const u of users) {
    found[u.id] = (await c.clinicUser(clinic, u.id)).display_name ?? i18n.t("people.noName");
  }
  return found;
}
