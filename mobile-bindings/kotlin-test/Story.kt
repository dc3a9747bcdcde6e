// The whole Peerbridge story from Kotlin, through the generated UniFFI bindings, against a
// live server: an HP sets up their account, invites a service user and a peer, approves
// the peer and introduces them; both accept, chat, consent and reveal their cards; the
// service user discloses risk, the peer's device suggests a flag, the peer raises it with
// an excerpt, and the HP (woken by their listener) opens and verifies the excerpt, then
// acknowledges and resolves. Also: server errors arrive as the documented exception
// classes and codes, a client is re-created from its storage directory and continues, a
// wrong storage key fails clearly without harming the store, and suspend/resume.
//
// Any failed step throws: the program exits non-zero and .ci/run fails.
// Run by mobile-bindings/kotlin-test/run (which starts the server and seeds the clinic).

import java.io.File
import java.time.LocalDate
import java.util.UUID
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import no.peerbridge.api.*
import no.peerbridge.sdk.*

fun step(name: String) = println("-- $name")

fun check(cond: Boolean, what: String) {
    if (!cond) throw IllegalStateException("story failed: $what")
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s), as the HP's authenticator app computes it. */
fun totp(base32Secret: String, at: Long = System.currentTimeMillis() / 1000): String {
    val alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    var bits = 0
    var value = 0
    val out = java.io.ByteArrayOutputStream()
    for (c in base32Secret.uppercase().filter { it != '=' }) {
        value = (value shl 5) or alphabet.indexOf(c)
        bits += 5
        if (bits >= 8) {
            out.write((value shr (bits - 8)) and 0xff)
            bits -= 8
        }
    }
    val mac = Mac.getInstance("HmacSHA1")
    mac.init(SecretKeySpec(out.toByteArray(), "HmacSHA1"))
    val counter = java.nio.ByteBuffer.allocate(8).putLong(at / 30).array()
    val h = mac.doFinal(counter)
    val o = h[h.size - 1].toInt() and 0xf
    val code = ((h[o].toInt() and 0x7f) shl 24) or ((h[o + 1].toInt() and 0xff) shl 16) or
        ((h[o + 2].toInt() and 0xff) shl 8) or (h[o + 3].toInt() and 0xff)
    return "%06d".format(code % 1_000_000)
}

/** Collects what a device's listener receives. */
class Inbox(val who: String) : PeerbridgeListener {
    val events = Channel<Event>(Channel.UNLIMITED)
    @Volatile var stopped: PeerbridgeException? = null

    override fun onEvents(events: List<Event>) {
        for (e in events) this.events.trySend(e)
    }

    override fun onStopped(error: PeerbridgeException) {
        stopped = error
    }

    /** Waits (up to 30 s) for the first event matching [pick]; earlier ones are dropped. */
    suspend fun <T> await(what: String, pick: (Event) -> T?): T =
        try {
            withTimeout(30_000) {
                var found: T? = null
                while (found == null) {
                    val e = events.receive()
                    found = pick(e)
                }
                found!!
            }
        } catch (t: kotlinx.coroutines.TimeoutCancellationException) {
            throw IllegalStateException("$who never received $what (stopped: $stopped)")
        }
}

fun key(fill: Int) = ByteArray(32) { fill.toByte() }

inline fun <reified E : PeerbridgeException> expectError(code: String, block: () -> Unit) {
    try {
        block()
    } catch (e: PeerbridgeException) {
        check(e is E, "expected ${E::class.simpleName}, got ${e::class.simpleName}: ${e.message}")
        check(errorCode(e) == code, "expected code $code, got ${errorCode(e)}")
        return
    }
    throw IllegalStateException("expected $code, but the call succeeded")
}

fun main() = runBlocking {
    val url = System.getenv("PB_URL") ?: error("PB_URL")
    val clinic = System.getenv("PB_CLINIC") ?: error("PB_CLINIC")
    val setupCode = System.getenv("PB_SETUP_CODE") ?: error("PB_SETUP_CODE")
    val work = File(System.getenv("PB_WORK") ?: error("PB_WORK"))

    step("the HP sets up their account on a phone (setup code, password, authenticator)")
    val hp = Peerbridge(url, File(work, "hp").path, key(1))
    val prov = hp.beginStaffSetup(setupCode, "correct horse battery staple")
    check(prov.otpauthUri.startsWith("otpauth://"), "otpauth URI")
    val hpSession = hp.completeStaffSetup(setupCode, totp(prov.totpSecret), "Ward phone")
    check(hpSession.role == Role.HP && hpSession.clinicId == clinic, "HP session in the clinic")
    hp.ensureKeyPackages()
    hp.ensureEscalationKey()
    check(hp.devices().size == 1, "one device listed")

    step("errors: an unknown invite is not_found, a short storage key is invalid_input")
    val stranger = Peerbridge(url, File(work, "stranger").path, key(9))
    expectError<PeerbridgeException.NotFound>("not_found") {
        runBlocking { stranger.enroll("0000-0000-0000-0000", "Phone") }
    }
    expectError<PeerbridgeException.InvalidInput>("invalid_input") {
        Peerbridge(url, File(work, "short-key").path, ByteArray(16))
    }

    step("the HP invites a service user and a peer; both enroll with their codes")
    val suInvite = hp.createInvite(clinic, EnrolleeRole.SERVICE_USER, "Solveig Brukersen", "+47 911 11 111")
    val peerInvite = hp.createInvite(clinic, EnrolleeRole.PEER, "Per Likemann", "+47 922 22 222")
    val suDir = File(work, "su").path
    var su = Peerbridge(url, suDir, key(2))
    val peer = Peerbridge(url, File(work, "peer").path, key(3))
    val suId = su.enroll(suInvite.code, "Solveig's phone").userId
    val peerId = peer.enroll(peerInvite.code, "Per's phone").userId
    su.ensureKeyPackages()
    peer.ensureKeyPackages()
    // A spent invite (404), an HP-only call by a user or peer (403).
    expectError<PeerbridgeException.NotFound>("not_found") {
        runBlocking { stranger.enroll(suInvite.code, "Phone") }
    }
    expectError<PeerbridgeException.Forbidden>("forbidden") {
        runBlocking { su.flags() }
    }
    expectError<PeerbridgeException.Forbidden>("forbidden") {
        runBlocking { peer.createInvite(clinic, EnrolleeRole.PEER, null, null) }
    }

    val hpInbox = Inbox("HP")
    val suInbox = Inbox("service user")
    val peerInbox = Inbox("peer")
    hp.start(hpInbox)
    su.start(suInbox)
    peer.start(peerInbox)
    for (i in listOf(hpInbox, suInbox, peerInbox)) {
        i.await("connected") { (it as? Event.ConnectionChanged)?.takeIf { c -> c.state == ConnectionState.CONNECTED } }
    }

    step("the HP approves the peer, supervises them, records the user's needs and introduces them")
    hp.setPeerProfile(clinic, peerId, PeerProfileUpdate(
        languages = listOf("nb"), gender = Gender.MAN, ageBand = AgeBand.FROM40_TO49,
        region = "Oslo", yearsSinceDiagnosis = 12u.toUShort(), topics = listOf(),
        remoteSupport = false, capacity = 3u.toUShort(), availability = "evenings"))
    val approved = hp.approvePeer(clinic, peerId, LocalDate.now().toString())
    check(approved.approved, "peer approved")
    hp.assignSupervisor(clinic, peerId, hpSession.userId)
    expectError<PeerbridgeException.Conflict>("conflict") {
        runBlocking { hp.assignSupervisor(clinic, peerId, hpSession.userId) }
    }
    hp.setNeeds(clinic, suId, Needs(
        languages = listOf("nb"), preferredGender = null, preferredAgeBands = listOf(),
        region = "Oslo", topics = listOf(), acceptsRemote = false))
    val suggested = hp.suggestions(clinic, suId)
    check(suggested.firstOrNull()?.peerId == peerId, "the peer is the first suggestion")
    val proposed = hp.proposeIntroduction(clinic, IntroductionCreate(
        clientId = UUID.randomUUID().toString(), serviceUserId = suId, peerId = peerId,
        blurbForServiceUser = "Has lived with HIV for twelve years; a good listener.",
        blurbForPeer = "Recently diagnosed, wants to talk about telling family.",
        expiresInHours = null))

    step("both see the proposal under aliases only, and accept")
    val suView = su.introductions().single()
    check(suView.id == proposed.id && suView.state == IntroductionState.PROPOSED, "SU sees the proposal")
    check(!suView.blurb.contains("Per") && !suView.counterpartAlias.contains("Per"), "no name before consent")
    su.acceptIntroduction(proposed.id)
    val active = peer.acceptIntroduction(proposed.id)
    check(active.state == IntroductionState.ACTIVE, "active once both accepted")
    val conv = active.conversationId ?: error("conversation opened")

    step("chat: the service user writes, the peer answers, receipts and history")
    su.syncAll()
    peer.syncAll()
    val hello = su.sendText(conv, "Hei, takk for at du ville snakke med meg")
    val got = peerInbox.await("the first message") { (it as? Event.Text)?.takeIf { t -> t.id == hello } }
    check(got.body == "Hei, takk for at du ville snakke med meg", "the peer reads the message")
    peer.sendReadReceipt(conv, listOf(hello))
    peer.sendText(conv, "Hei! Så fint å høre fra deg.")
    suInbox.await("the receipt") { (it as? Event.Receipt)?.takeIf { r -> hello in r.ids } }
    suInbox.await("the answer") { (it as? Event.Text)?.takeIf { t -> t.body == "Hei! Så fint å høre fra deg." } }
    val history = su.history(conv, null, 50u).events.filterIsInstance<Event.Text>().map { it.body }
    check(history == listOf("Hei, takk for at du ville snakke med meg", "Hei! Så fint å høre fra deg."),
        "history holds both lines in order: $history")
    check(su.safetyCode(conv) == peer.safetyCode(conv), "equal safety codes")

    step("consent and reveal: the cards arrive only after both consented")
    su.setIdentityCard(IdentityCard(firstName = "Solveig", phone = "+47 911 11 111", photo = null))
    peer.setIdentityCard(IdentityCard(firstName = "Per", phone = "+47 922 22 222", photo = null))
    val one = su.consent(proposed.id, ConsentScope.REVEAL)
    check(one.myReveal && !one.theirReveal, "one side consented")
    check(peer.counterpartCard(proposed.id) == null, "no card before both consent")
    peer.consent(proposed.id, ConsentScope.REVEAL)
    val suCard = suInbox.await("the peer's card") { it as? Event.IdentityCard }
    val peerCard = peerInbox.await("the user's card") { it as? Event.IdentityCard }
    check(suCard.firstName == "Per" && peerCard.firstName == "Solveig", "cards exchanged")
    check(su.counterpartCard(proposed.id)?.phone == "+47 922 22 222", "card kept")

    step("risk: the user discloses, the peer's device suggests a flag, the peer raises it")
    val risky = listOf("Jeg har bestemt meg for å ta livet mitt i kveld", "Jeg har samlet pillene og tar dem i kveld")
    for (line in risky) su.sendText(conv, line)
    val riskSeqs = mutableListOf<ULong>()
    while (riskSeqs.size < 2) {
        val s = peerInbox.await("a risk suggestion") { (it as? Event.RiskSuggested)?.takeIf { r -> r.conversation == conv } }
        riskSeqs.add(s.seq)
    }
    check(detectRisk(risky[0])?.severity == Severity.IMMINENT, "the detector reads the risk on its own")
    check(detectRisk("Jeg hadde en fin tur i dag") == null, "and not in a harmless line")
    val receipt = peer.raiseFlag(conv, RiskCategory.SUICIDE_RISK, Severity.IMMINENT,
        "Sounded calm and decided.", riskSeqs)

    step("the HP is woken, opens the excerpt and verifies it, acknowledges and resolves")
    hpInbox.await("the flag") { (it as? Event.FlagChanged)?.takeIf { f -> f.flag == receipt.id } }
    check(hp.flags().any { it.id == receipt.id }, "the flag is in the HP's queue")
    val opened = hp.openFlag(receipt.id)
    check(opened.lines.map { it.text } == risky, "the excerpt holds exactly the quoted lines: ${opened.lines.map { it.text }}")
    check(opened.note == "Sounded calm and decided.", "the peer's note")
    val ack = hp.acknowledgeFlag(receipt.id)
    check(ack.flag.status == FlagStatus.ACKNOWLEDGED, "acknowledged")
    expectError<PeerbridgeException.InvalidInput>("invalid_input") {
        runBlocking { hp.flagSubject(receipt.id, "   ") }
    }
    val who = hp.flagSubject(receipt.id, "Calling her back: the excerpt says tonight.")
    check(who.userId == suId && who.displayName == "Solveig Brukersen", "the identity, read for a stated reason")
    val resolved = hp.resolveFlag(receipt.id, FlagOutcome.FOLLOW_UP_BOOKED, "Called her; appointment tomorrow.")
    check(resolved.flag.status == FlagStatus.RESOLVED, "resolved")
    check(hp.crisisResources(Locale.NB).resources.any { it.phone == "113" }, "crisis resources")

    step("suspend and resume: nothing is lost while the app is in the background")
    su.suspend()
    suInbox.await("suspended") { (it as? Event.ConnectionChanged)?.takeIf { c -> c.state == ConnectionState.SUSPENDED } }
    peer.sendText(conv, "Jeg er her. En sykepleier ringer deg.")
    su.resume()
    suInbox.await("the message sent while suspended") { (it as? Event.Text)?.takeIf { t -> t.body == "Jeg er her. En sykepleier ringer deg." } }

    step("persistence: the app is killed; the client is re-created from its directory and key")
    su.suspend()
    su.close()
    expectError<PeerbridgeException.WrongStorageKey>("wrong_storage_key") {
        Peerbridge(url, suDir, key(42))
    }
    su = Peerbridge(url, suDir, key(2))
    check(su.session()?.userId == suId, "still enrolled as the same user")
    val kept = su.history(conv, null, 100u).events.filterIsInstance<Event.Text>().map { it.body }
    check(kept.containsAll(risky) && kept.contains("Hei! Så fint å høre fra deg."), "history survives: $kept")
    val again = Inbox("service user (re-created)")
    su.start(again)
    val after = su.sendText(conv, "Takk. Jeg venter på telefonen.")
    peerInbox.await("a message from the re-created client") { (it as? Event.Text)?.takeIf { t -> t.id == after } }

    for (c in listOf(hp, su, peer, stranger)) {
        c.suspend()
        c.close()
    }
    println("STORY PASSED")
}
