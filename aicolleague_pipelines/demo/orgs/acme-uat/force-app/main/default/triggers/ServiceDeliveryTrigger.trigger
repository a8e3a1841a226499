trigger ServiceDeliveryTrigger on ServiceDelivery__c (before insert, before update, after insert, after update) {
    new ServiceDeliveryTriggerHandler().run();
}
