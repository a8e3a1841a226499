trigger InvoiceTrigger on Invoice__c (before insert, after update) {
    if (Trigger.isBefore) {
        for (Invoice__c inv : Trigger.new) {
            if (inv.Due_Date__c == null && inv.Invoice_Date__c != null) {
                inv.Due_Date__c = inv.Invoice_Date__c.addDays(14);
            }
        }
    } else {
        List<Subscription__c> reactivated = new List<Subscription__c>();
        for (Invoice__c inv : Trigger.new) {
            Invoice__c old = Trigger.oldMap.get(inv.Id);
            if (inv.Paid__c && !old.Paid__c && inv.Subscription__c != null) {
                Subscription__c sub = [SELECT Id, Status__c FROM Subscription__c WHERE Id = :inv.Subscription__c];
                if (sub.Status__c == 'Past_Due') {
                    sub.Status__c = 'Active';
                    reactivated.add(sub);
                }
            }
        }
        update reactivated;
    }
}
