#![deny(warnings)]

use {
    crate::{ComponentGenerator, Ctx},
    anyhow::{Result, anyhow},
    once_cell::sync::Lazy,
    proptest::{
        prelude::Strategy,
        test_runner::{self, TestRng, TestRunner},
    },
    std::{collections::HashMap, env, fs, iter, marker::PhantomData},
    tokio::runtime::Runtime,
    wasmtime::{
        Config, Engine, Store,
        component::{Component, InstancePre, Linker, ResourceTable},
    },
    wasmtime_wasi::{WasiCtx, WasiCtxBuilder},
};

mod echoes;
mod echoes_generated;
mod tests;

fn get_seed() -> Result<[u8; 32]> {
    let seed = <[u8; 32]>::try_from(hex::decode(env!("COMPONENTIZE_PY_TEST_SEED"))?.as_slice())?;

    eprintln!(
        "using seed {} (set COMPONENTIZE_PY_TEST_SEED env var to override)",
        hex::encode(seed)
    );

    Ok(seed)
}

static SEED: Lazy<[u8; 32]> = Lazy::new(|| get_seed().unwrap());

static ENGINE: Lazy<Engine> = Lazy::new(|| {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);

    Engine::new(&config).unwrap()
});

#[expect(clippy::type_complexity)]
#[expect(clippy::too_many_arguments)]
async fn make_component(
    wit: &str,
    worlds: &[&str],
    world_module: Option<&str>,
    guest_code: &[(&str, &str)],
    python_path: &[&str],
    module_worlds: &[(&str, &[&str])],
    intersect_world: Option<&str>,
    add_to_linker: Option<&dyn Fn(&mut Linker<Ctx>) -> Result<()>>,
) -> Result<Vec<u8>> {
    let tempdir = tempfile::tempdir()?;
    fs::write(tempdir.path().join("app.wit"), wit)?;

    for (name, content) in guest_code {
        let path = tempdir.path().join(name);
        fs::create_dir_all(path.parent().unwrap())?;
        fs::write(&path, content)?;
    }

    ComponentGenerator {
        wit_paths: &[&tempdir.path().join("app.wit")],
        worlds,
        features: &[],
        all_features: false,
        world_module,
        python_path: &python_path
            .iter()
            .copied()
            .chain(iter::once(tempdir.path().to_str().ok_or_else(|| {
                anyhow!("unable to parse temporary directory path as UTF-8")
            })?))
            .collect::<Vec<_>>(),
        module_worlds,
        app_name: "app",
        output_path: &tempdir.path().join("app.wasm"),
        add_to_linker,
        stub_wasi: false,
        import_interface_names: &HashMap::new(),
        export_interface_names: &HashMap::new(),
        full_names: false,
        intersect_world,
        init_limits: None,
    }
    .generate()
    .await?;

    Ok(fs::read(tempdir.path().join("app.wasm"))?)
}

#[derive(Debug, Copy, Clone)]
struct MyF32(f32);

impl PartialEq<MyF32> for MyF32 {
    fn eq(&self, other: &Self) -> bool {
        (self.0.is_nan() && other.0.is_nan()) || (self.0 == other.0)
    }
}

#[derive(Debug, Copy, Clone)]
struct MyF64(f64);

impl PartialEq<MyF64> for MyF64 {
    fn eq(&self, other: &Self) -> bool {
        (self.0.is_nan() && other.0.is_nan()) || (self.0 == other.0)
    }
}

trait Host {
    type World;

    fn add_to_linker(linker: &mut Linker<Ctx>) -> Result<()>;

    async fn instantiate_pre(store: &mut Store<Ctx>, pre: InstancePre<Ctx>) -> Result<Self::World>;
}

struct Tester<H> {
    pre: InstancePre<Ctx>,
    seed: [u8; 32],
    _phantom: PhantomData<H>,
}

impl<H: Host> Tester<H> {
    #[expect(clippy::too_many_arguments)]
    fn new(
        wit: &str,
        worlds: &[&str],
        world_module: Option<&str>,
        guest_code: &[(&str, &str)],
        python_path: &[&str],
        module_worlds: &[(&str, &[&str])],
        intersect_world: Option<&str>,
        seed: [u8; 32],
    ) -> Result<Self> {
        // TODO: create two versions of the component -- one with and one
        // without an `add_to_linker` -- and run each test on each component in
        // the `test` method (but probably not in the `proptest` method, since
        // that would slow it down a lot).  This will help exercise the stub
        // mechanism when pre-initializing.
        let component = &Runtime::new()?.block_on(make_component(
            wit,
            worlds,
            world_module,
            guest_code,
            python_path,
            module_worlds,
            intersect_world,
            Some(&H::add_to_linker),
        ))?;
        let mut linker = Linker::<Ctx>::new(&ENGINE);
        H::add_to_linker(&mut linker)?;
        Ok(Self {
            pre: linker.instantiate_pre(&Component::new(&ENGINE, component)?)?,
            seed,
            _phantom: PhantomData,
        })
    }

    fn test(
        &self,
        test: impl Fn(&H::World, &mut Store<Ctx>, &Runtime) -> Result<()>,
    ) -> Result<()> {
        self.test_with::<H>(test)
    }

    fn test_with<H1: Host>(
        &self,
        test: impl Fn(&H1::World, &mut Store<Ctx>, &Runtime) -> Result<()>,
    ) -> Result<()> {
        self.test_with_wasi::<H1>(
            WasiCtxBuilder::new()
                .inherit_stdout()
                .inherit_stderr()
                .build(),
            test,
        )
    }

    fn test_with_wasi<H1: Host>(
        &self,
        wasi: WasiCtx,
        test: impl Fn(&H1::World, &mut Store<Ctx>, &Runtime) -> Result<()>,
    ) -> Result<()> {
        let runtime = Runtime::new()?;

        let mut store = runtime.block_on(async move {
            Store::new(
                &ENGINE,
                Ctx {
                    wasi,
                    table: ResourceTable::new(),
                    limits: Default::default(),
                },
            )
        });

        let world = runtime.block_on(H1::instantiate_pre(&mut store, self.pre.clone()))?;

        test(&world, &mut store, &runtime)
    }

    fn proptest<S: Strategy>(
        &self,
        strategy: &S,
        test: impl Fn(S::Value, &H::World, &mut Store<Ctx>, &Runtime) -> Result<()>,
    ) -> Result<()>
    where
        S::Value: PartialEq<S::Value> + Clone + Send + Sync + 'static,
    {
        let runtime = Runtime::new()?;
        let config = test_runner::Config::default();
        let algorithm = config.rng_algorithm;
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(algorithm, &self.seed));

        Ok(runner.run(strategy, move |v| {
            let mut store = runtime.block_on(async {
                let table = ResourceTable::new();
                let wasi = WasiCtxBuilder::new()
                    .inherit_stdout()
                    .inherit_stderr()
                    .build();

                Store::new(&ENGINE, Ctx { wasi, table, limits: Default::default() })
            });

            let world = runtime
                .block_on(H::instantiate_pre(&mut store, self.pre.clone()))
                .unwrap();

            test(v, &world, &mut store, &runtime).unwrap();
            Ok(())
        })?)
    }

    fn all_eq<S: Strategy>(
        &self,
        strategy: &S,
        echo: impl Fn(S::Value, &H::World, &mut Store<Ctx>, &Runtime) -> Result<S::Value>,
    ) -> Result<()>
    where
        S::Value: PartialEq<S::Value> + Clone + Send + Sync + 'static,
    {
        self.proptest(strategy, |v, world, store, runtime| {
            assert_eq!(v, echo(v.clone(), world, store, runtime)?);
            Ok(())
        })
    }
}
