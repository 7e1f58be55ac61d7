CREAT TABLE broken (x);
