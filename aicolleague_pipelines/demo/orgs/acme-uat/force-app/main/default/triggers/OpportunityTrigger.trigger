trigger OpportunityTrigger on Opportunity (before insert, before update, after update) {
    if (Acme_Settings__c.getInstance().Disable_Triggers__c == true) {
        return;
    }
    if (Trigger.isBefore) {
        Set<Id> accountIds = new Set<Id>();
        for (Opportunity opp : Trigger.new) {
            if (opp.AccountId != null) {
                accountIds.add(opp.AccountId);
            }
        }
        Map<Id, Account> accounts = new Map<Id, Account>(
            [SELECT Id, Customer_Tier__c, Region__c FROM Account WHERE Id IN :accountIds]
        );
        for (Opportunity opp : Trigger.new) {
            Account acc = accounts.get(opp.AccountId);
            if (acc == null) {
                continue;
            }
            if (acc.Customer_Tier__c == 'Platinum' && opp.Discount__c != null && opp.Discount__c > 30) {
                opp.addError('Platinum discounts above 30% need finance approval');
            }
            if (opp.Margin__c == null && opp.Amount != null) {
                opp.Margin__c = acc.Region__c == 'EMEA' ? 32 : 28;
            }
            if (Trigger.isUpdate) {
                Opportunity old = Trigger.oldMap.get(opp.Id);
                if (opp.StageName == 'Closed Won' && old.StageName != 'Closed Won'
                        && opp.Delivery_Start_Date__c == null) {
                    opp.Delivery_Start_Date__c = Date.today().addDays(14);
                }
                if (opp.Discount__c != old.Discount__c) {
                    opp.Discount_Approved__c = false;
                }
            }
        }
    } else if (Trigger.isAfter && Trigger.isUpdate) {
        List<Program__c> programs = new List<Program__c>();
        for (Opportunity opp : Trigger.new) {
            Opportunity old = Trigger.oldMap.get(opp.Id);
            if (opp.StageName == 'Closed Won' && old.StageName != 'Closed Won' && opp.Program__c == null) {
                programs.add(new Program__c(
                    Name = opp.Name,
                    Account__c = opp.AccountId,
                    Status__c = 'Planned',
                    Start_Date__c = opp.Delivery_Start_Date__c,
                    Budget__c = opp.Amount
                ));
            }
        }
        if (!programs.isEmpty()) {
            insert programs;
        }
    }
}
