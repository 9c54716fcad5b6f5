import { Component } from '@angular/core';
import { bootstrapApplication } from '@angular/platform-browser';
import { provideRouter, RouterLink, RouterOutlet, Routes } from '@angular/router';

@Component({ selector: 'app-home', template: '<h1>Angular</h1><a routerLink="/about">About</a>', imports: [RouterLink] })
class Home {}

@Component({ selector: 'app-about', template: '<h1>About (client route)</h1>' })
class About {}

const routes: Routes = [{ path: '', component: Home }, { path: 'about', component: About }];

@Component({ selector: 'app-root', template: '<router-outlet />', imports: [RouterOutlet] })
class App {}

bootstrapApplication(App, { providers: [provideRouter(routes)] }).catch((err) => console.error(err));
