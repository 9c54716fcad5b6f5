import { greeting } from '@mono/greeting'
document.getElementById('app').textContent = greeting
