mod fakes;
