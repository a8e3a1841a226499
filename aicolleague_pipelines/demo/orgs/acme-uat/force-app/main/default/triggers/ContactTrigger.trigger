trigger ContactTrigger on Contact (before insert, before update) {
    ContactPreferenceSync.applyPreferredEmail(Trigger.new);
}
