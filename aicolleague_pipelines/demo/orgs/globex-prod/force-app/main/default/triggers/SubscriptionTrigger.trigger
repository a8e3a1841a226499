trigger SubscriptionTrigger on Subscription__c (before insert, before update, after update) {
    new SubscriptionTriggerHandler().handle();
}
