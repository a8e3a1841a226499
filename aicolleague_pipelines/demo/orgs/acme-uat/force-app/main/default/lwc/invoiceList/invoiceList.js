import { LightningElement, api, wire } from 'lwc';
import getOpenInvoices from '@salesforce/apex/InvoiceService.getOpenInvoices';
import AMOUNT_FIELD from '@salesforce/schema/Invoice__c.Amount__c';
import DUE_DATE_FIELD from '@salesforce/schema/Invoice__c.Due_Date__c';

export default class InvoiceList extends LightningElement {
    @api recordId;
    columns = [
        { label: 'Invoice', fieldName: 'Name' },
        { label: 'Amount', fieldName: AMOUNT_FIELD.fieldApiName, type: 'currency' },
        { label: 'Due', fieldName: DUE_DATE_FIELD.fieldApiName, type: 'date' },
        { label: 'Days overdue', fieldName: 'Days_Overdue__c', type: 'number' }
    ];

    @wire(getOpenInvoices, { accountId: '$recordId' })
    invoices;
}
