({
    handleLog : function(component, event, helper) {
        var action = component.get("c.logDelivery");
        action.setParams({
            programId: component.get("v.recordId"),
            hours: component.get("v.hours"),
            deliveryDate: component.get("v.deliveryDate")
        });
        action.setCallback(this, function(response) {
            if (response.getState() === "SUCCESS") {
                component.set("v.message", "Logged " + response.getReturnValue().Hours__c + " hours.");
                $A.get("e.force:refreshView").fire();
            } else {
                component.set("v.message", "Could not log the delivery.");
            }
        });
        $A.enqueueAction(action);
    }
})
